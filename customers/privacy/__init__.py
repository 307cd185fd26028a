"""Personal-data requests (PIPL / GDPR) for one customer: an export of everything held about them,
and an erasure that removes their identity everywhere while orders stay for the books. Every app
contributes through `customers.registry.PersonalDataProvider` (see docs/architecture.md)."""
