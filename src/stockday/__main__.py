from stockday.cli.app import main

main()
