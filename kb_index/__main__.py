from kb_index.cli import main

main()
