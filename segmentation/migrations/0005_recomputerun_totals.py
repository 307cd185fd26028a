from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("segmentation", "0004_recompute_population"),
    ]

    operations = [
        migrations.AddField(
            model_name="recomputerun",
            name="totals",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
