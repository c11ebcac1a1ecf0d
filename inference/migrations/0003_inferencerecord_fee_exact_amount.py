"""`InferenceRecord.fee` becomes an `AmountField` (exact ints; see rewards/fields.py), like the model price it is
charged at: as a plain `DecimalField` SQLite read a fee back to 15 significant digits, and the queued settlement
reads the fee from the record. PostgreSQL keeps its numeric(78, 0) column and every fee; SQLite copies each fee
as the digits it held (`amounts_as_digits_on_sqlite`). Reversed, the column is a plain decimal column again."""

from django.db import migrations

import rewards.fields


class Migration(migrations.Migration):

    dependencies = [
        ('inference', '0002_inferencerecord_query_digest'),
    ]

    operations = [
        migrations.AlterField(
            model_name='inferencerecord',
            name='fee',
            field=rewards.fields.AmountField(default=0, help_text='OPEN base units charged.'),
        ),
        migrations.RunPython(
            rewards.fields.amounts_as_digits_on_sqlite('inference', 'InferenceRecord', 'fee'),
            migrations.RunPython.noop,
        ),
    ]
