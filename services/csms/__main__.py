from csms.cli import main

main()
