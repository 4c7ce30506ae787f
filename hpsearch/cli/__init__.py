"""The `hpsearch` command line: `main` holds the app and the server's commands (`run`, `serve`,
`worker`, `db`), `admin` the operator's, `client` those that talk to a server over REST."""
