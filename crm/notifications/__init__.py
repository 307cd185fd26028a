"""In-app notifications, their e-mail delivery and the daily digest (ground floor: imports no app above crm).

Apps register their kinds (`registry.register_kind`) and digest sections (`digest.register_section`)
in `AppConfig.ready()` and call `services.notify` / `services.notify_many`; see docs/architecture.md.
"""
