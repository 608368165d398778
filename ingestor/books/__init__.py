"""L2 order books: the sorted book, each venue's synchronisation rules, and the feed that publishes them."""
