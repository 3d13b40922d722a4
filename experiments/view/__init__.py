"""What a person watches: the live dashboard as a pure render function, the runner that shows it
while a run goes, and the console tables (run summary, catalog).
"""
