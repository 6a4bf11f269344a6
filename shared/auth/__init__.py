"""Who is asking, and what they may do: principals and roles (`principal`), the bearer
tokens Kapok issues (`tokens`), where every instance learns of them (`registry`), an
association's own OpenID Connect provider (`oidc`), and the gate both transports ask
(`gate`). README, "Signing in"."""
