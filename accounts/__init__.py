"""People's own credentials for programs: personal API tokens.

A user makes a token on /account/tokens/ (or `manage.py create_api_token`); a script sends it as
`Authorization: Bearer <token>` to the REST API and acts as that user: it reads what the user may
read and, with the read-write scope, writes what the user may write through the API. The same
header opens the live pages' websockets (accounts/websocket.py).
"""
