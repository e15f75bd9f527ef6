"""Agent desktop, supervisor wallboard, REST API, auth and WebSocket push (issue 6).

Entry points: `create_desktop_app` / `install_desktop` (app.py), `load_desktop_config`
(config.py), `create_user` (auth.py), `add_user_command` (cli.py). Everything the desktop
needs from the rest of the server comes through the Protocols in ports.py.
"""
