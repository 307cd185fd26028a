from celery import shared_task


@shared_task(acks_late=True, ignore_result=False)
def ping_task(tag: str = "") -> str:
    """Answers at once: `manage.py doctor` sends one to every queue to prove a worker takes it."""
    return f"pong {tag}".strip()
