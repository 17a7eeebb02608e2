"""rosterd: POSIX users and groups for hosts whose people sign in through an identity provider."""
