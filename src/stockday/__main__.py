from stockday.cli import main

main()
