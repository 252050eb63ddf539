# benign: assistant-style code
import textwrap

paragraph = (
    "The quarterly results show steady growth across all regions, with the strongest "
    "performance in the northern markets and a modest decline in online sales."
)
for line in textwrap.wrap(paragraph, width=50):
    print("  " + line)
print(textwrap.shorten(paragraph, width=60, placeholder="..."))
