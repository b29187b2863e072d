"""Payment orders: remote payments confirmed by the user (app or SMS), escrow, refunds."""
