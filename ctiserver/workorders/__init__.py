"""Work orders (工单): the one 95598 deadline table and the pure deadline engine."""
