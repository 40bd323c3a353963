// Logs Qlik Sense-like events through a log4net configuration file, as the Qlik services do:
// one LoggingEvent per line of a cases file, on the named logger, with its properties set.
// A Qlik LocalLogConfig.xml has a <configuration> root holding log4net's <appender> and
// <logger> elements, which the Qlik service hands to log4net; plain log4net wants them in a
// <log4net> element, so they are moved into one here and nothing else is changed.
// Usage: mono log4net_emit.exe CONFIG.xml CASES.tsv
// CASES.tsv: per line, tab-separated base64 (UTF-8) of logger, level, message, then key, value
// pairs; the key `log4net_emit:exception` gives the event an exception whose text (what log4net
// renders, Exception.ToString()) is its value. Written and compiled (mcs, against
// log4net.dll) by tests/inputs/test_log4net.py.
using System;
using System.IO;
using System.Text;
using System.Xml;
using log4net;
using log4net.Config;
using log4net.Core;

// An exception as a Qlik service logs one, whose text is exactly the given text.
public class LoggedException : Exception
{
    readonly string text;

    public LoggedException(string text) : base(text)
    {
        this.text = text;
    }

    public override string ToString()
    {
        return text;
    }
}

public static class Log4netEmit
{
    const string ExceptionKey = "log4net_emit:exception";

    static string Text(string field)
    {
        return Encoding.UTF8.GetString(Convert.FromBase64String(field));
    }

    static XmlElement Log4netElement(string path)
    {
        XmlDocument document = new XmlDocument();
        document.Load(path);
        XmlElement root = document.DocumentElement;
        if (root.LocalName == "log4net")
        {
            return root;
        }
        XmlElement wrapper = document.CreateElement("log4net");
        while (root.FirstChild != null)
        {
            wrapper.AppendChild(root.FirstChild);
        }
        return wrapper;
    }

    public static int Main(string[] args)
    {
        log4net.Util.LogLog.InternalDebugging = Environment.GetEnvironmentVariable("LOG4NET_DEBUG") != null;
        XmlConfigurator.Configure(Log4netElement(args[0]));
        int count = 0;
        foreach (string line in File.ReadAllLines(args[1]))
        {
            if (line.Length == 0)
            {
                continue;
            }
            string[] fields = line.Split('\t');
            ILog log = LogManager.GetLogger(Text(fields[0]));
            Level level = log.Logger.Repository.LevelMap[Text(fields[1])];
            Exception exception = null;
            for (int i = 3; i + 1 < fields.Length; i += 2)
            {
                if (Text(fields[i]) == ExceptionKey)
                {
                    exception = new LoggedException(Text(fields[i + 1]));
                }
            }
            LoggingEvent logged = new LoggingEvent(
                typeof(Log4netEmit), log.Logger.Repository, log.Logger.Name, level, Text(fields[2]), exception);
            for (int i = 3; i + 1 < fields.Length; i += 2)
            {
                if (Text(fields[i]) != ExceptionKey)
                {
                    logged.Properties[Text(fields[i])] = Text(fields[i + 1]);
                }
            }
            log.Logger.Log(logged);
            count++;
        }
        LogManager.Shutdown();
        Console.WriteLine(count + " events logged");
        return 0;
    }
}
