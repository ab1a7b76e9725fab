from agentbus.framework.cli.main import main

main()
