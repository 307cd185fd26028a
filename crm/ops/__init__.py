"""Operations: health and readiness endpoints, the request log, the checks of `manage.py doctor`,
tenant backups and restores. Not a Django app: plain modules the settings and commands point to."""
