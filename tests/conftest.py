pytest_plugins = ["tests.fixtures.prefect_server", "tests.fixtures.browser", "tests.fixtures.smtp", "tests.fixtures.http_listener", "tests.fixtures.step_plugin"]
