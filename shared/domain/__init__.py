"""The domain kernel: what every service's domain/ builds on, importing no I/O.

`Aggregate` (a stream id, a version and the events just decided) and the domain errors
(`DomainError`, `RuleBroken`, `NotFound`, `InvalidInput`). The command-service toolkit in
`shared/service/` turns these errors into HTTP and NATS answers; nothing here knows about
either, so a domain package can be imported, and tested, without a bus or a database.
"""
