"""Pipeline steps: one module per step, each a pure transform plus a thin main()."""
