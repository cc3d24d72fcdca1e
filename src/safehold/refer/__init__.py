"""Referrals to authorities: reports built from preserved evidence and sent on.

* :mod:`safehold.refer.ncmec` — NCMEC CyberTipline reports: the report model, its XML
  and schema, and the API client (submit, upload, file details, finish, retract).
"""
