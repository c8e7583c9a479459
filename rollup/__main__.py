from rollup.cli import main

main()
