"""On-site payment: NFC SIM cards (EMV / PBOC 2.0 in software), POS terminals and online
authorisation, transit e-cash, and OTA management of the payment applet."""
