"""Reading what training runs measured: sweep tables (``fit``), gradient scales
(``epsilon``) and alignment (``align``), each with intervals whose coverage is tested."""
