# benign: assistant-style code
import calendar

cal = calendar.TextCalendar(calendar.MONDAY)
print(cal.formatmonth(2024, 2))
print("leap years 2000-2030:", [y for y in range(2000, 2031) if calendar.isleap(y)])
