"""A company's profile: its display name, default time zone, currency, language and logo.

`tenant_update_profile` is the one write path. The tenant admin's "Company profile" settings page calls
it today; the platform console's tenant editing is meant to call the same service (the audit event is
then written in the schema the caller is in: the company's own log from its site, the platform's log
from the console).

Logos are untrusted uploads: at most `LOGO_MAX_BYTES`, a PNG, JPEG or WebP by their content (not their
name), at most `LOGO_MAX_SIDE` pixels a side, read from the header before any pixel is decoded (a
small file can declare an image that takes gigabytes to decode), then re-encoded as a PNG of at most
`LOGO_SHOWN_SIDE` pixels. What is stored is always our own PNG, never the uploaded bytes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.translation import gettext as _
from django_tenants.utils import schema_context

from crm.audit.services import audit_diff, audit_record

from .models import Tenant, logo_name_version
from .services import tenant_settings_apply
from .worker_cache import tenant_settings_changed

logger = logging.getLogger(__name__)

LOGO_MAX_BYTES = 1024 * 1024
LOGO_MAX_SIDE = 4096
LOGO_SHOWN_SIDE = 512
LOGO_FORMATS = {"PNG", "JPEG", "WEBP"}
LOGO_FOLDER = "company"
PROFILE_FIELDS = ("name", "time_zone", "currency", "default_language")


def logo_png(upload) -> bytes:
    """The uploaded logo re-encoded as a PNG of at most LOGO_SHOWN_SIDE px, or ValidationError({"logo"})."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    size = getattr(upload, "size", None)
    if size is not None and size > LOGO_MAX_BYTES:
        raise ValidationError({"logo": _("The logo must be at most 1 MB.")}, code="logo_too_large")
    upload.seek(0)
    data = upload.read(LOGO_MAX_BYTES + 1)
    if len(data) > LOGO_MAX_BYTES:
        raise ValidationError({"logo": _("The logo must be at most 1 MB.")}, code="logo_too_large")
    wrong_type = ValidationError(
        {"logo": _("The logo must be a PNG, JPEG or WebP image.")}, code="logo_wrong_type"
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Image.open reads the header only: format and size are known before any pixel is decoded.
            image = Image.open(io.BytesIO(data), formats=sorted(LOGO_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard, for headers declaring far more pixels than ours allows
        raise ValidationError(
            {"logo": _("The logo can be at most %(max)d × %(max)d pixels.") % {"max": LOGO_MAX_SIDE}},
            code="logo_too_big",
        ) from None
    except (UnidentifiedImageError, OSError):
        raise wrong_type from None
    if image.format not in LOGO_FORMATS:
        raise wrong_type
    width, height = image.size
    if width < 1 or height < 1 or width > LOGO_MAX_SIDE or height > LOGO_MAX_SIDE:
        raise ValidationError(
            {
                "logo": _("The logo can be at most %(max)d × %(max)d pixels; this one is %(w)d × %(h)d.")
                % {"max": LOGO_MAX_SIDE, "w": width, "h": height}
            },
            code="logo_too_big",
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)  # a phone photo's orientation
        image = image.convert("RGBA")
        image.thumbnail((LOGO_SHOWN_SIDE, LOGO_SHOWN_SIDE), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
    except (OSError, ValueError, SyntaxError):  # truncated or corrupt data behind a valid header
        raise ValidationError(
            {"logo": _("The logo could not be read. Save it again as PNG, JPEG or WebP and retry.")},
            code="logo_unreadable",
        ) from None
    return out.getvalue()


def logo_name(png: bytes) -> str:
    """A name from the content: a new logo gets a new URL, so browsers never show a cached old one."""
    return f"{LOGO_FOLDER}/logo-{hashlib.sha256(png).hexdigest()[:16]}.png"


def _store_logo(*, tenant: Tenant, png: bytes) -> str:
    """Save the PNG under the company's own folder ("<schema>/company/logo-<hash>.png") whichever
    schema the caller is in (the console runs in "public"): crm.storage prefixes the connection's."""
    with schema_context(tenant.schema_name):
        name = default_storage.generate_filename(logo_name(png))
        if default_storage.exists(name):
            return name
        return default_storage.save(name, ContentFile(png))


def _delete_logo_file(*, schema_name: str, name: str) -> None:
    if not name:
        return
    try:
        with schema_context(schema_name):
            default_storage.delete(name)
    except OSError:  # a missing file is no reason to fail; the row no longer points to it
        logger.warning("Could not delete the old logo %s of %s", name, schema_name)


def logo_open(tenant: Tenant):
    """The stored logo of `tenant` opened for reading, or None."""
    if not tenant.logo:
        return None
    with schema_context(tenant.schema_name):
        try:
            return default_storage.open(tenant.logo, "rb")
        except (FileNotFoundError, OSError):
            return None


def tenant_update_profile(
    *,
    actor,
    tenant: Tenant,
    name: str,
    time_zone: str,
    currency: str,
    default_language: str,
    logo=None,
    remove_logo: bool = False,
) -> Tenant:
    """Change the company's profile; records `tenant.profile_updated` with the fields that changed.

    Called by the tenant admin's settings page and meant for the platform console's tenant editing too.
    `logo` is an uploaded file (checked and re-encoded, see the module), `remove_logo` drops the logo.
    Raises ValidationError with field errors and changes nothing (row, file or audit) on any error.
    The time zone, currency and language apply from the next request: pages read the tenant row on
    every request, and report caches include the time zone in their keys.
    """
    stored: list[str] = []  # a logo file written by this call, removed again if it does not commit
    try:
        with transaction.atomic():
            updated = _update_profile(
                actor=actor,
                tenant=tenant,
                values={
                    "name": " ".join((name or "").split()),
                    "time_zone": time_zone,
                    "currency": currency,
                    "default_language": default_language,
                },
                logo=logo,
                remove_logo=remove_logo,
                stored=stored,
            )
    except BaseException:
        for file_name in stored:
            _delete_logo_file(schema_name=tenant.schema_name, name=file_name)
        raise
    for field in (*PROFILE_FIELDS, "logo", "updated_at"):
        setattr(tenant, field, getattr(updated, field))
    return tenant


def _update_profile(
    *, actor, tenant: Tenant, values: dict[str, str], logo, remove_logo: bool, stored: list[str]
) -> Tenant:
    errors: dict[str, list[str]] = {}
    png = None
    if logo is not None:
        try:
            png = logo_png(logo)
        except ValidationError as error:
            errors.update(error.message_dict)
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    before: dict[str, Any] = {field: getattr(locked, field) for field in PROFILE_FIELDS}
    try:  # the rules of a company's settings, in one place for provisioning, the console and here
        tenant_settings_apply(locked, **values)
    except ValidationError as error:
        for field, messages in error.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)

    old_logo = locked.logo
    if png is not None:
        if logo_name_version(logo_name(png)) != logo_name_version(old_logo):
            locked.logo = _store_logo(tenant=locked, png=png)
            stored.append(locked.logo)
    elif remove_logo:
        locked.logo = ""
    after = {field: getattr(locked, field) for field in PROFILE_FIELDS}
    changes = audit_diff(before, after)
    if locked.logo != old_logo:
        # The file names: which logo was shown before and after (no file name means no logo).
        changes["logo"] = {
            "old": old_logo.rsplit("/", 1)[-1] or None,
            "new": locked.logo.rsplit("/", 1)[-1] or None,
        }
    if not changes:
        return locked
    locked.save(update_fields=[*PROFILE_FIELDS, "logo", "updated_at"])
    audit_record(actor=actor, action="tenant.profile_updated", target=locked, changes=changes)
    schema = locked.schema_name
    transaction.on_commit(lambda: tenant_settings_changed(schema))  # workers drop their cached row
    if old_logo and locked.logo != old_logo:
        schema_name = locked.schema_name
        transaction.on_commit(lambda: _delete_logo_file(schema_name=schema_name, name=old_logo))
    return locked
