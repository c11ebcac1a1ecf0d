"""Real documents for the Documents Datanet tests, built with the libraries that read them (the engine tests'
`document_builders`), and the fact a search has to find."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine_ingest"))

from document_builders import simple_docx, text_pdf, word_document  # noqa: E402

# The fact a search has to find: on page 2 of the PDF, among pages about other things.
PLANTED_FACT = ("The Harrowgate tidal turbine, commissioned in 2019, delivers 47 megawatts at spring tide and "
                "powers about 31,000 homes on the Fennick coast.")
_CUT = PLANTED_FACT.rfind(" ", 0, 95)  # a PDF line holds about 90 characters: the fact takes two lines
PDF_PAGES = [
    ["Maintenance handbook for coastal energy sites.", "Inspect the mooring chains of each buoy every six months.",
     "Replace worn shackles before the winter storms arrive.", "Record every inspection in the site logbook."],
    ["Site summaries.", PLANTED_FACT[:_CUT], PLANTED_FACT[_CUT + 1:],
     "The turbine blades are cleaned of barnacles twice a year by divers."],
    ["Safety rules.", "Nobody works on a platform alone after dark.",
     "Life jackets are worn on every boat transfer, whatever the weather."],
]
HTML_PAGE = (
    b"<!doctype html><html><head><title>Visitor guide</title></head><body><nav>Home | About</nav><main>"
    b"<h1>Visitor guide</h1><h2>Opening hours</h2><p>The visitor centre opens at nine in the morning and closes at "
    b"five in the afternoon, every day except Christmas.</p><h2>Getting there</h2><p>Take the coastal bus number 12 "
    b"from the railway station and get off at the lighthouse stop.</p></main><footer>(c) 2026</footer></body></html>"
)


def training_docx():
    def build(document):
        document.add_heading("Staff training", level=1)
        document.add_heading("First aid", level=2)
        document.add_paragraph("Every technician completes a two-day first aid course before working offshore.")
        document.add_heading("Radio procedure", level=2)
        document.add_paragraph("Call the harbour master on channel 16 before leaving and on returning to port.")

    return word_document(build)




def uploaded(name, data):
    """An uploaded file as Django hands it to a view."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


__all__ = ["HTML_PAGE", "PDF_PAGES", "PLANTED_FACT", "simple_docx", "text_pdf", "training_docx", "uploaded",
           "word_document"]
