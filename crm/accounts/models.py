"""Users live in their tenant's schema; platform admins are superusers in the public schema."""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")
    MANAGER = "manager", _("Manager")
    SALES = "sales", _("Sales")


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.update(is_superuser=True, is_staff=True, role=Role.ADMIN)
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(_("email"), unique=True)
    full_name = models.CharField(_("name"), max_length=150, blank=True)
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.SALES)
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    is_staff = models.BooleanField(_("staff"), default=False)
    date_joined = models.DateTimeField(_("joined"), default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["full_name", "email"]
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=["admin", "manager", "sales"]), name="user_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return (self.full_name or self.email).split(" ")[0]

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_manager_or_admin(self) -> bool:
        return self.role in (Role.ADMIN, Role.MANAGER)

    @property
    def sees_all_customers(self) -> bool:
        return self.is_manager_or_admin


class Invitation(models.Model):
    """An invitation to join a tenant.

    The emailed link carries a random secret; only its SHA-256 is kept here (`token_hash`), with the
    link's own expiry (`expires_at`). A link is good only while both match this row, so the secret key
    alone cannot forge one; resending draws a new secret, which retires the old link.
    """

    email = models.EmailField(_("email"))
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.SALES)
    full_name = models.CharField(_("name"), max_length=150, blank=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="invitations_sent"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(_("last sent"), null=True, blank=True)
    token_hash = models.CharField(max_length=64, blank=True, editable=False)
    expires_at = models.DateTimeField(_("link expires"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        constraints = [
            models.UniqueConstraint(
                fields=["email"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_pending_per_email",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=["admin", "manager", "sales"]), name="invitation_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None


class UserSession(models.Model):
    """Which sessions belong to which user, so deactivating a user can end them at once, and the user
    can see and end their own sessions (browser, address, last seen) from their profile.

    Written on login, removed on logout; rows whose session has expired are pruned at the user's
    next login. Sessions are looked up by key in `django_session`, never decoded.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_key = models.CharField(max_length=40, unique=True)
    user_agent = models.CharField(max_length=300, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("user session")
        verbose_name_plural = _("user sessions")

    def __str__(self) -> str:
        return f"{self.user_id}:{self.session_key[:6]}"


class AccountSettings(models.Model):
    """Sign-in rules of this tenant (one row, pk 1), set by its admins on Settings -> Security."""

    require_two_factor_for_admins = models.BooleanField(
        _("require two-factor sign-in for admins"), default=False
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("account settings")
        verbose_name_plural = _("account settings")
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="account_settings_singleton")]

    def __str__(self) -> str:
        return "account settings"
