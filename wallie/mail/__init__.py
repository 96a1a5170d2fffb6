"""Mail provider layer: Gmail and Outlook clients, MIME parsing and OAuth tokens.

Library code only: the clients return typed results and raise the errors in
:mod:`wallie.mail.errors`; storing the results is the sync step's job.
"""
