"""People: login/logout, admin user management, project membership, login throttling."""
