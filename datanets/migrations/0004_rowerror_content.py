from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('datanets', '0003_contribution_attempts'),
    ]

    operations = [
        migrations.AddField(
            model_name='rowerror',
            name='content',
            field=models.JSONField(blank=True, default=dict, help_text="The row as read, each value shortened: its columns, or its raw text under 'raw' when it could not be parsed."),
        ),
    ]
