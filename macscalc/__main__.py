from macscalc.cli import main

main()
