# benign: assistant-style code
from datetime import date, datetime, timedelta

start = datetime.strptime("2024-01-15", "%Y-%m-%d").date()
today = date(2024, 6, 1)
delta = today - start
print(f"{delta.days} days")
next_week = today + timedelta(weeks=1)
print(next_week.isoformat(), next_week.strftime("%A"))
