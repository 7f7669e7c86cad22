"""Operators' access control: users with argon2 passwords, web sessions, login rate
limiting and the users' action history. API tokens and `Principal` stay in
`askue.headend.api.auth`; a logged-in user becomes the same `Principal`, so every
scoped query works unchanged for both."""
