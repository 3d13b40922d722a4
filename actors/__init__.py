"""The components that stand for machines and the engines that host them. The only folder that
imports Ray. ``components`` holds the plain asyncio classes (load generator, router, prefill and
decode units, collector and their helpers); ``engines`` holds the virtual-time engine, the Ray
engine with placement, clock sync and supervision, and the builder both engines share.
"""
