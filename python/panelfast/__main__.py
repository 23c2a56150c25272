from panelfast.cli import main

main()
