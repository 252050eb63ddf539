# benign: assistant-style code
import xml.etree.ElementTree as ET

tree = ET.parse("catalog.xml")
for book in tree.getroot().findall("book"):
    title = book.findtext("title")
    price = float(book.findtext("price", "0"))
    print(f"{title}: {price:.2f}")
