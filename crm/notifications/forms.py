from django import forms

from .selectors import PreferenceRow


class PreferencesForm(forms.Form):
    """One checkbox per topic and channel: `email:<key>` for a kind, `digest:<key>` for a digest section."""

    def __init__(self, *args, rows: list[PreferenceRow], **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = rows
        for row in rows:
            for channel in ("email", "digest"):
                value = getattr(row, channel)
                if value is not None:
                    self.fields[f"{channel}:{row.key}"] = forms.BooleanField(
                        required=False, initial=value, label=row.label
                    )

    def choices(self) -> dict[str, dict[str, bool]]:
        result: dict[str, dict[str, bool]] = {}
        for name, value in self.cleaned_data.items():
            channel, key = name.split(":", 1)
            result.setdefault(key, {})[channel] = value
        return result

    def table(self) -> list[dict]:
        """Rows for the template: the label and the bound field of each channel (None when absent)."""
        return [
            {
                "key": row.key,
                "label": row.label,
                "email": self[f"email:{row.key}"] if row.email is not None else None,
                "digest": self[f"digest:{row.key}"] if row.digest is not None else None,
            }
            for row in self.rows
        ]
