# benign: assistant-style code
import sqlite3

con = sqlite3.connect("notes.db")
con.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)")
con.execute("INSERT INTO notes (body) VALUES (?)", ("buy milk",))
con.commit()
for row in con.execute("SELECT id, body FROM notes ORDER BY id"):
    print(row)
con.close()
