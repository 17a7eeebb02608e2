"""OpenID Connect login: provider set-up, token verification, claim mapping and the web flow."""
