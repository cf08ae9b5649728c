from pms_cli.cli.app import main

main()
