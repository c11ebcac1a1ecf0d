"""`ModelVersion.price_per_inference` becomes an `AmountField` (exact ints; see rewards/fields.py): as a plain
`DecimalField` SQLite held a price above 2**63 as a REAL and Django read any price back to 15 significant digits.
PostgreSQL keeps its numeric(78, 0) column and every price; SQLite copies each price as the digits it held
(`amounts_as_digits_on_sqlite`). Reversed, the column is a plain decimal column again."""

from django.db import migrations

import rewards.fields


class Migration(migrations.Migration):

    dependencies = [
        ('models_registry', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='modelversion',
            name='price_per_inference',
            field=rewards.fields.AmountField(default=0, help_text='OPEN base units (18 decimals) charged per answer.'),
        ),
        migrations.RunPython(
            rewards.fields.amounts_as_digits_on_sqlite('models_registry', 'ModelVersion', 'price_per_inference'),
            migrations.RunPython.noop,
        ),
    ]
