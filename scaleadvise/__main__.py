from scaleadvise.cli import main

main()
