"""CSV downloads that open safely in a spreadsheet: every cell goes through the ingest engine's formula
neutraliser (a cell starting with =, +, -, @, tab or CR gets a leading `'`, OWASP's CSV-injection advice),
so a contributor's text or a model's name can never run as a formula on the reader's machine.

One writer for every CSV the site serves: the row errors of an upload (page and API), and the rewards
exports (earnings, receipts).
"""

import csv
import io
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse

from datanets.ingest.export import neutralise_formula

CHUNK_ROWS = 500


def csv_chunks(header, rows: Iterable, *, chunk_rows: int = CHUNK_ROWS) -> Iterator[bytes]:
    """The header, then the rows, as UTF-8 byte chunks of `chunk_rows` rows; None is an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([neutralise_formula(cell) for cell in header])
    for n, row in enumerate(rows, start=1):
        writer.writerow([neutralise_formula("" if cell is None else cell) for cell in row])
        if n % chunk_rows == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def csv_download(*, header, rows: Iterable, filename: str) -> StreamingHttpResponse:
    """A streamed CSV attachment (rows are read as the response is sent)."""
    response = StreamingHttpResponse(csv_chunks(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
