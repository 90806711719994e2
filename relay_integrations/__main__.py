from relay_integrations.cli import main

raise SystemExit(main())
