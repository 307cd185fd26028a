"""Login throttling (django-axes) counts failures per normalised e-mail address.

Sign-in finds the account case-insensitively and ignores surrounding spaces, so counting the exact
text typed would give every spelling ("Manager@X", "manager@x ") its own five guesses.
"""


def normalise_login(value) -> str:
    return str(value or "").strip().lower()


def axes_username(request, credentials=None) -> str | None:
    """AXES_USERNAME_CALLABLE: the address from the credentials (or the posted form), normalised."""
    value = None
    if credentials:
        value = credentials.get("username")
    if value is None and request is not None:
        data = getattr(request, "data", None) or getattr(request, "POST", {})
        value = data.get("username")
    if value is None:
        return None
    return normalise_login(value)
