"""Browser assets served by the app: GraphiQL's scripts and styles (`graphiql/`), vendored from the npm registry
at exact versions by `refresh.py`, so the IDE at /graphql works without any network."""
