# benign: assistant-style code
from decimal import Decimal, ROUND_HALF_UP

prices = [Decimal("19.99"), Decimal("5.25"), Decimal("0.10")]
subtotal = sum(prices)
tax = (subtotal * Decimal("0.0825")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
print(subtotal, tax, subtotal + tax)
