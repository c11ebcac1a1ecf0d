"""Real documents built with the libraries that read them: PDFs with pypdf's writer, Word documents with
python-docx, and hostile variants (encrypted, image-only, decompression bombs) made the way an attacker
would make them."""

import io
import struct
import zipfile
import zlib

import docx
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, NumberObject, StreamObject

MB = 1024 * 1024


def _escape(line):
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(pages, password=None):
    """A PDF whose pages hold the given lines in Helvetica (a real text layer); [] makes a blank page."""
    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        operations = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        operations += [f"({_escape(line)}) Tj T*" for line in lines]
        operations.append("ET")
        content = DecodedStreamObject()
        content.set_data("\n".join(operations).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(content)
    if password:
        writer.encrypt(password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def image_only_pdf(pages=2):
    """Scanned-looking pages: each draws a grey image XObject and has no text at all."""
    writer = PdfWriter()
    for _ in range(pages):
        image = DecodedStreamObject()
        image.set_data(bytes(range(0, 256, 4)) * 64)  # 64 x 64 8-bit grey
        image.update(
            {
                NameObject("/Type"): NameObject("/XObject"),
                NameObject("/Subtype"): NameObject("/Image"),
                NameObject("/Width"): NumberObject(64),
                NameObject("/Height"): NumberObject(64),
                NameObject("/ColorSpace"): NameObject("/DeviceGray"),
                NameObject("/BitsPerComponent"): NumberObject(8),
            }
        )
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/XObject"): DictionaryObject({NameObject("/Im1"): writer._add_object(image)})}
        )
        content = DecodedStreamObject()
        content.set_data(b"q 468 0 0 648 72 72 cm /Im1 Do Q")
        page[NameObject("/Contents")] = writer._add_object(content)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def flate_bomb_pdf(inflated_mb):
    """One page whose content stream is a small FlateDecode stream inflating to ``inflated_mb`` MB."""
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    compressor = zlib.compressobj(9)
    block = b" " * MB
    packed = b"".join(compressor.compress(block) for _ in range(inflated_mb)) + compressor.flush()
    stream = StreamObject()
    stream._data = packed
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def word_document(build):
    """A .docx made by python-docx; ``build(document)`` adds the content."""
    document = docx.Document()
    build(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def simple_docx(text="Plain paragraph text."):
    return word_document(lambda document: document.add_paragraph(text))


def with_extra_entries(docx_bytes, entries):
    """The same document with more zip entries appended: ``entries`` is [(name, bytes or size in MB of zeros)]."""
    out = io.BytesIO(docx_bytes)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            if isinstance(content, int):
                with archive.open(name, "w", force_zip64=True) as member:
                    for _ in range(content):
                        member.write(bytes(MB))
            else:
                archive.writestr(name, content)
    return out.getvalue()


def lying_size_docx(inflated_mb):
    """A zip bomb that dodges declared-size checks: word/document.xml inflates to ``inflated_mb`` MB but
    its local and central headers claim 1,000 bytes."""
    base = simple_docx()
    source = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            if info.filename == "word/document.xml":
                with archive.open("word/document.xml", "w", force_zip64=False) as member:
                    member.write(b"<?xml version='1.0'?>")
                    for _ in range(inflated_mb):
                        member.write(b"<a/>" * (MB // 4))
            else:
                archive.writestr(info, source.read(info.filename))
    data = bytearray(out.getvalue())
    name = b"word/document.xml"
    local = data.find(name) - 30  # the name's first occurrence follows its 30-byte local header
    assert data[local : local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, local + 22, 1000)
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_length] == name:
            struct.pack_into("<I", data, central + 24, 1000)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)
