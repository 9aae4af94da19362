from hie.cli import main

main()
