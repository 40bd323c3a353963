"""log4net appender templates for Qlik Sense, shipped with the package for `qlik2mqtt appenders`."""
